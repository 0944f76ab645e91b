"""A recovery token as the proof the account service spends in its guarded write.

The write itself (row change, token spent, commit, token given back if the commit fails) is
:func:`crudauth.credentials.guarded_write`; what follows a credential change is
:class:`crudauth.credentials.AccountService`'s.
"""

from __future__ import annotations

from dataclasses import dataclass

from crudauth.email.tokens import LiveRecord, RecoveryClaims, RecoveryTokens


@dataclass(frozen=True)
class TokenSpend:
    """Spending a redeemed recovery token: one atomic compare-and-set in the shared store."""

    tokens: RecoveryTokens
    claims: RecoveryClaims
    record: LiveRecord

    async def consume(self) -> None:
        await self.tokens.consume(self.claims, self.record)

    async def restore(self) -> None:
        await self.tokens.restore(self.claims, self.record)
