"""The user-model mixin under the import path of the reference library.

``from crudauth.models import AuthUserMixin`` is how the reference's README and tutorials
declare a model; the mixin itself lives in ``crudauth.identity``.
"""

from crudauth.identity.model import AuthUserMixin, make_auth_identity

__all__ = ["AuthUserMixin", "make_auth_identity"]
