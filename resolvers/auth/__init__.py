"""Accounts and access, one module per concern:

- ``sign_in``   sign-up, email verification, sign-in (password or emailed code)
- ``sessions``  a user's sessions: list, sign out, revoke
- ``api_keys``  API keys (and the command line's ``create_key_for_workspace``)
- ``members``   members, invitations, roles, the workspace's name
- ``codes``, ``limits``, ``common``  what those share

Who is calling (``Principal``, ``authenticate``, ``require``) lives in ``resolvers.principal``
and is re-exported here.
"""

from resolvers.auth.api_keys import create_key_for_workspace
from resolvers.auth.common import AuthOutcome
from resolvers.principal import Principal, actor_columns, authenticate, require

__all__ = [
    "AuthOutcome",
    "Principal",
    "actor_columns",
    "authenticate",
    "create_key_for_workspace",
    "require",
]
