"""The defences crudauth claims, each with the tests that prove it.

``tools/docs/security_defences.py`` renders this list as docs/security-defences.md, and
``tests/test_security_defences.py`` fails when a listed test no longer exists, when a defence
has no test, or when the page differs from what this list renders. A defence is listed here
only with a test that fails on the weak behaviour.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Defence:
    """One claim of the security page: the threat, what stops it, and its proofs."""

    area: str
    threat: str
    defence: str
    tests: tuple[str, ...]


DEFENCES: tuple[Defence, ...] = (
    # -- OAuth and OpenID Connect --------------------------------------------------------------
    Defence(
        "OAuth",
        "A forged, replayed or cross-browser callback signs someone in (login CSRF, replay)",
        "256-bit state stored under a hash, bound to the browser by a cookie secret, single-use, "
        "10 minutes, tied to one provider",
        (
            "tests/test_oauth_attacks.py::test_a_wrong_state_is_refused",
            "tests/test_oauth_attacks.py::test_a_state_from_another_browser_is_refused",
            "tests/test_oauth_attacks.py::test_a_replayed_state_is_refused",
            "tests/test_oauth_attacks.py::test_a_state_of_provider_a_on_provider_b_callback_is_refused",
            "tests/test_multiworker_oauth.py::test_one_state_sent_to_four_workers_at_once_makes_exactly_one_session",
        ),
    ),
    Defence(
        "OAuth",
        "A forged or substituted ID token, or a mix-up between providers",
        "ID token checked against the provider's JWKS (algorithm allow-list, iss, aud, azp, exp, "
        "nonce, at_hash); RFC 9207 iss checked; PKCE S256 always",
        (
            "tests/test_oauth_attacks.py::test_a_bad_id_token_is_refused",
            "tests/test_oauth_attacks.py::test_an_authorization_response_from_another_issuer_is_refused",
            "tests/test_oauth_attacks.py::test_a_missing_iss_is_refused_when_the_provider_promises_it",
            "tests/test_oauth_attacks.py::test_a_wrong_pkce_verifier_is_refused_by_the_provider",
        ),
    ),
    Defence(
        "OAuth",
        "Someone who registered an address first, or a provider identity with that address, "
        "takes over the account",
        "an existing password account is linked only by its signed-in owner or the owner's "
        "mailed confirmation; only provider-verified emails match",
        (
            "tests/test_oauth_linking.py::test_the_owner_confirms_a_link_by_mail_and_a_squatter_loses_the_account",
            "tests/test_oauth_linking.py::test_an_identity_linked_to_another_account_is_not_moved",
            "tests/test_oauth_attacks.py::test_an_unusable_email_is_refused",
        ),
    ),
    Defence(
        "OAuth",
        "The callback is used as an open redirect",
        "redirect_to must pass the safe-redirect rule; anything else lands on the default page",
        ("tests/test_oauth_attacks.py::test_an_open_redirect_to_lands_on_the_default_page",),
    ),
    # -- two-factor sign-in ----------------------------------------------------------------
    Defence(
        "Two-factor",
        "A TOTP code seen once (shoulder-surfed, phished) is used again, on any worker",
        "a code is claimed once per account and step by a conditional SQL update",
        (
            "tests/test_mfa_signin.py::test_a_code_signs_in_once_a_second_sign_in_needs_the_next_step",
            "tests/test_multiworker_mfa.py::test_one_code_on_four_workers_at_once_makes_one_session",
        ),
    ),
    Defence(
        "Two-factor",
        "Codes are guessed faster than the password lockout allows",
        "wrong codes share the account's lockout budget with the password; a challenge dies "
        "after five wrong codes",
        (
            "tests/test_mfa_signin.py::test_wrong_codes_share_the_password_lockout",
            "tests/test_mfa_signin.py::test_a_challenge_dies_after_five_wrong_codes",
            "tests/test_multiworker_mfa.py::test_twenty_wrong_codes_over_four_workers_lock_at_the_threshold",
            "tests/test_mfa_guessing_bound.py::test_a_day_of_guessing_with_the_password_evaluates_at_most_116_codes",
        ),
    ),
    Defence(
        "Two-factor",
        "A stolen challenge is answered from another browser, or survives a password reset",
        "the challenge is bound to the browser or client that passed the first factor, "
        "single-use, short-lived and tied to the account's epoch",
        (
            "tests/test_mfa_signin.py::test_a_challenge_answered_from_another_browser_is_refused",
            "tests/test_mfa_signin.py::test_a_password_reset_while_a_challenge_waits_kills_it",
            "tests/test_mfa_signin.py::test_a_challenge_expires",
        ),
    ),
    Defence(
        "Two-factor",
        "A database dump reveals TOTP secrets or recovery codes",
        "secrets encrypted with a rotating key list separate from SECRET_KEY; recovery codes "
        "stored as keyed hashes",
        (
            "tests/test_mfa_account.py::test_the_secret_is_encrypted_at_rest_and_codes_are_keyed_hashes",
        ),
    ),
    # -- passwords ---------------------------------------------------------------------------
    Defence(
        "Passwords",
        "A copy of the users table is cracked offline",
        "argon2id at the OWASP parameters, salted; older formats are upgraded at the next sign-in",
        (
            "tests/test_passwords.py::test_default_hash_is_argon2id_with_owasp_parameters",
            "tests/test_passwords.py::test_hashes_are_salted",
            "tests/test_passwords.py::test_reference_hash_logs_in_and_is_upgraded_to_argon2id",
            "tests/test_legacy_verifiers.py::test_a_legacy_hash_signs_in_and_is_upgraded_to_argon2id",
        ),
    ),
    Defence(
        "Passwords",
        "bcrypt compares only the first 72 bytes, so a long password's prefix would pass",
        "plain bcrypt over 72 bytes never matches; the earlier crudauth format pre-hashes",
        (
            "tests/test_passwords.py::test_plain_bcrypt_never_matches_on_a_72_byte_prefix",
            "tests/test_passwords.py::test_reference_format_is_not_truncated_at_72_bytes",
        ),
    ),
    Defence(
        "Passwords",
        "A leaked unsalted SHA-256 digest is replayed as the password",
        "input shaped like the digest never passes the plain-bcrypt fallback",
        ("tests/test_passwords.py::test_leaked_reference_digest_is_not_accepted_as_a_password",),
    ),
    Defence(
        "Passwords",
        "A megabyte password burns CPU before any check",
        "input over the limit is refused before hashing",
        ("tests/test_passwords.py::test_megabyte_password_is_refused_before_hashing",),
    ),
    Defence(
        "Passwords",
        "A broken legacy verifier signs someone in or crashes the sign-in",
        "a verifier that raises is a wrong password at the cost of one, and is logged",
        (
            "tests/test_legacy_verifiers.py::test_a_verifier_that_raises_is_a_wrong_password_and_is_logged",
            "tests/test_legacy_verifiers.py::test_a_non_matching_legacy_hash_costs_the_same_as_a_wrong_password",
        ),
    ),
    # -- enumeration and timing -------------------------------------------------------------
    Defence(
        "Enumeration",
        "Sign-in answers or timing tell which accounts exist",
        "unknown user, wrong password and disabled account get the same response and cost "
        "exactly one password verification",
        (
            "tests/test_passwords.py::test_every_refused_login_costs_exactly_one_verification",
            "tests/test_passwords.py::test_every_refused_login_gets_the_same_response",
        ),
    ),
    Defence(
        "Enumeration",
        "Recovery and registration tell which addresses have accounts",
        "the same answer for known and unknown addresses; a mail failure changes nothing",
        (
            "tests/test_email_enumeration.py::test_known_and_unknown_accounts_get_the_same_answer_and_work",
            "tests/test_email_enumeration.py::test_a_mail_failure_never_changes_the_answer",
            "tests/test_email_enumeration.py::test_register_duplicate_email_gets_the_same_202_and_the_owner_a_notice",
        ),
    ),
    # -- sessions ---------------------------------------------------------------------------
    Defence(
        "Sessions",
        "Session ids are guessed, or read from a copy of the store",
        "256-bit ids from the CSPRNG, stored only as a keyed hash",
        ("tests/test_session_cookies.py::test_session_id_is_256_bit_urlsafe_and_fresh_per_login",),
    ),
    Defence(
        "Sessions",
        "Session fixation: the attacker plants an id before the victim signs in",
        "an id the server never issued is never adopted; signing in ends the presented session",
        (
            "tests/test_session_lifecycle.py::test_attacker_chosen_session_id_is_never_adopted",
            "tests/test_session_lifecycle.py::test_login_revokes_the_presented_session_and_issues_a_new_id",
        ),
    ),
    Defence(
        "Sessions",
        "A stolen cookie is used forever",
        "idle and absolute expiry checked on the server; activity never passes the absolute limit",
        (
            "tests/test_session_lifecycle.py::test_untouched_session_expires_one_second_past_idle_timeout",
            "tests/test_session_lifecycle.py::test_absolute_timeout_is_not_extended_by_activity",
        ),
    ),
    Defence(
        "Sessions",
        "Sessions outlive a password change or a disabled account",
        "each session is bound to the account's epoch (token_version) and to its active flag",
        (
            "tests/test_session_lifecycle.py::test_bumped_token_version_invalidates_the_session",
            "tests/test_session_lifecycle.py::test_disabled_user_loses_every_session",
            "tests/test_change_password.py::test_change_password_rebinds_this_session_and_ends_the_others",
        ),
    ),
    Defence(
        "Sessions",
        "A cookie planted from a sibling subdomain shadows the real one",
        "a credential cookie sent twice counts as no cookie",
        ("tests/test_duplicate_cookies.py::test_duplicate_session_cookie_is_no_credential",),
    ),
    Defence(
        "Sessions",
        "A logout on one worker is undone by a request on another",
        "an update never resurrects a deleted record",
        (
            "tests/test_multiworker_session_races.py::test_a_logout_during_a_request_on_another_worker_stays_a_logout",
        ),
    ),
    # -- CSRF and origins -------------------------------------------------------------------
    Defence(
        "CSRF",
        "Another site makes a signed-in browser change something",
        "every unsafe request with a session needs the session's own token in X-CSRF-Token; "
        "the cookie alone never passes",
        (
            "tests/test_csrf.py::test_unsafe_method_without_csrf_token_is_refused",
            "tests/test_csrf.py::test_another_users_csrf_token_is_refused",
            "tests/test_csrf.py::test_csrf_cookie_alone_is_not_enough",
            "tests/test_csrf.py::test_junk_bearer_header_does_not_skip_csrf_for_a_cookie_session",
        ),
    ),
    Defence(
        "CSRF",
        "Login CSRF: another site signs the victim in to the attacker's account",
        "cross-site and opaque-origin sign-ins are refused",
        (
            "tests/test_csrf.py::test_cross_site_login_is_refused_without_a_session",
            "tests/test_origins.py::test_logins_from_other_pages_are_refused_and_set_no_cookie",
        ),
    ),
    Defence(
        "CSRF",
        "A token stolen by a same-site page is replayed from another origin",
        "unsafe session requests must also come from the app's own origin",
        (
            "tests/test_origins.py::test_a_sessions_unsafe_request_from_another_origin_is_refused_even_with_its_token",
        ),
    ),
    # -- lockout ----------------------------------------------------------------------------
    Defence(
        "Lockout",
        "Parallel guesses across workers overshoot the attempt limit",
        "a slot is reserved atomically before any hashing",
        (
            "tests/test_multiworker_lockout.py::test_parallel_guessing_evaluates_at_most_the_threshold",
            "tests/test_lockout.py::test_sixth_attempt_is_refused_even_with_the_right_password_and_without_hashing",
        ),
    ),
    Defence(
        "Lockout",
        "One account is guessed from many addresses",
        "the identifier and the account are counted wherever the attempts come from",
        (
            "tests/test_lockout.py::test_one_guess_each_from_twenty_addresses_trips_the_identifier_lock",
            "tests/test_lockout.py::test_the_lockout_budget_is_per_account_not_per_login_field",
        ),
    ),
    Defence(
        "Lockout",
        "The lockout is turned against the account's owner",
        "a browser that signed in before holds a device cookie and keeps its own lock",
        (
            "tests/test_lockout.py::test_a_known_browser_signs_in_while_an_attacker_holds_the_account_locked",
            "tests/test_lockout.py::test_a_forged_or_expired_device_cookie_gives_no_exemption",
            "tests/test_lockout.py::test_a_new_epoch_ends_a_device_cookies_exemption_from_the_account_lock",
        ),
    ),
    Defence(
        "Lockout",
        "The lock tells which identifiers are accounts",
        "unknown identifiers lock exactly like known ones; an account lock reached through "
        "another identifier answers as a wrong password",
        (
            "tests/test_lockout.py::test_a_lock_on_an_unknown_identifier_looks_like_one_on_a_known_identifier",
            "tests/test_lockout.py::test_a_fresh_identifier_of_a_locked_account_answers_like_an_unknown_identifier",
        ),
    ),
    Defence(
        "Lockout",
        "Forged X-Forwarded-For gives every guess a fresh address",
        "forwarding headers are read only through declared proxies; IPv6 is counted by /64",
        (
            "tests/test_lockout.py::test_a_spoofed_forwarded_for_changes_the_bucket_only_through_a_trusted_proxy",
            "tests/test_lockout.py::test_ipv6_addresses_in_one_64_share_a_bucket",
        ),
    ),
    Defence(
        "Lockout",
        "Taking the counter store down gives unlimited guesses",
        "the lockout fails closed: no counter, no password check",
        ("tests/test_lockout.py::test_the_lockout_fails_closed_when_its_store_is_down",),
    ),
    # -- bearer tokens ----------------------------------------------------------------------
    Defence(
        "Bearer tokens",
        "A stolen refresh token lives for weeks",
        "refresh tokens rotate on every use; a spent one revokes its whole family",
        (
            "tests/test_bearer_refresh.py::test_reusing_a_spent_token_revokes_the_whole_family",
            "tests/test_bearer_refresh.py::test_concurrent_double_submit_has_exactly_one_winner",
            "tests/test_bearer_refresh.py::test_a_revoked_family_can_never_restart",
        ),
    ),
    Defence(
        "Bearer tokens",
        "Forged tokens: alg none, key confusion, a refresh token used as an access token",
        "pinned algorithms, a type claim and separate keys per token type",
        (
            "tests/test_bearer_attacks.py::test_forged_access_tokens_are_refused",
            "tests/test_bearer_attacks.py::test_a_refresh_token_is_not_an_access_token",
            "tests/test_bearer_config.py::test_hs256_made_with_the_public_key_is_refused",
        ),
    ),
    Defence(
        "Bearer tokens",
        "A copy of the token store yields usable tokens",
        "families keep only hashes of token ids",
        ("tests/test_bearer_refresh.py::test_the_store_never_holds_a_raw_token",),
    ),
    # -- keys, configuration, outages -------------------------------------------------------
    Defence(
        "Keys and configuration",
        "A weak or leaked secret, or a rotation that signs everyone out",
        "production refuses short secrets; secret_fallbacks verify while the new key signs",
        (
            "tests/test_configuration.py::test_production_refuses_a_weak_secret",
            "tests/test_configuration.py::test_session_survives_rotation_into_secret_fallbacks",
            "tests/test_bearer_refresh.py::test_rotating_the_secret_logs_nobody_out",
        ),
    ),
    Defence(
        "Keys and configuration",
        "Development settings reach production",
        "production mode refuses memory stores and insecure cookies",
        (
            "tests/test_configuration.py::test_production_refuses_the_memory_backend",
            "tests/test_configuration.py::test_production_refuses_insecure_cookies",
        ),
    ),
    Defence(
        "Outages",
        "A store outage makes every request anonymous",
        "an unreachable store is a 503, never a signed-out caller",
        (
            "tests/test_store_outage_is_never_anonymous.py::test_an_optional_current_user_answers_503_when_the_session_store_is_down",
        ),
    ),
    # -- input and secrets ------------------------------------------------------------------
    Defence(
        "Input",
        "Malformed input crashes a route (500) or signs someone in",
        "every parser is fuzzed: no 5xx, no sign-in from junk",
        (
            "tests/test_fuzz_credentials.py::test_any_session_cookie_is_anonymous",
            "tests/test_fuzz_tokens.py::test_any_unsigned_jwt_shape_is_refused",
            "tests/test_schemathesis.py::test_no_operation_answers_a_server_error",
        ),
    ),
    Defence(
        "Input",
        "Oversized bodies or fields cost work before any check",
        "bodies and fields are bounded and refused before lookups or hashing",
        (
            "tests/test_request_limits.py::test_an_oversized_sign_in_form_is_refused_before_the_password_check",
            "tests/test_request_limits.py::test_an_oversized_sign_in_field_is_a_422_before_the_password_check",
        ),
    ),
    Defence(
        "Secrets",
        "Hooks and logs leak password hashes, tokens or forged log lines",
        "hooks and log records carry no secret; typed identifiers are escaped",
        (
            "tests/test_hooks_and_logs_carry_no_secrets.py::test_no_hook_and_no_log_record_carries_a_secret_or_a_raw_control_character",
        ),
    ),
    Defence(
        "Recovery",
        "A reset link is reused, or used after the password changed",
        "single-use tokens bound to the state they change; one purpose per key",
        (
            "tests/test_email_flows.py::test_a_reset_token_dies_when_the_password_or_email_changes",
            "tests/test_email_flows.py::test_a_token_for_one_purpose_is_refused_for_another",
            "tests/test_email_flows.py::test_links_ignore_the_host_header",
        ),
    ),
    Defence(
        "Credential changes",
        "A crash between the new hash and the session sweep leaves old sessions alive",
        "the hash and the epoch bump commit together; a failed commit changes nothing",
        (
            "tests/test_account_service.py::test_a_failing_commit_leaves_hash_and_epoch_unchanged",
            "tests/test_change_password.py::test_a_failed_commit_keeps_the_old_password_and_every_session",
        ),
    ),
)
