"""Provision users from the command line: the same services and JSON shapes as the admin API."""

from __future__ import annotations

import getpass
import json
import secrets
import sys
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from accounts import selectors, services
from accounts.api.serializers import UserSerializer
from accounts.audit import AuditContext
from accounts.errors import AccountError
from accounts.models import User
from accounts.roles import Role
from accounts.tokens import api_token_create


class Command(BaseCommand):
    """``users list|create|set-role|set-password|deactivate|token-create [--json]``.

    Passwords are never taken as arguments (they would show in the process list and shell history): they are
    read from standard input with ``--password-stdin``, asked interactively, or generated with ``--generate``
    and printed once.
    """

    help = "List, create, change the role of, reset the password of, or deactivate users."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(
            dest="action", required=True, metavar="{list,create,set-role,set-password,deactivate,token-create}"
        )
        listing = sub.add_parser("list", help="List users.")
        listing.add_argument("--role", choices=Role.values)
        listing.add_argument("--inactive", action="store_true", help="Only deactivated users.")
        create = sub.add_parser("create", help="Create a user with a role and an initial password.")
        create.add_argument("username")
        create.add_argument("--role", choices=Role.values, default=Role.VIEWER)
        create.add_argument("--email", default="")
        create.add_argument("--display-name", default="")
        set_role = sub.add_parser("set-role", help="Change a user's role.")
        set_role.add_argument("username")
        set_role.add_argument("role", choices=Role.values)
        set_password = sub.add_parser("set-password", help="Reset a user's password.")
        set_password.add_argument("username")
        deactivate = sub.add_parser("deactivate", help="Deactivate a user (there is no delete).")
        deactivate.add_argument("username")
        token = sub.add_parser(
            "token-create", help="Create a personal API token for a user and print it once (for automation)."
        )
        token.add_argument("username")
        token.add_argument("--read-only", action="store_true", help="The token may only read (GET).")
        token.add_argument("--expires", type=int, metavar="DAYS", help="Expire after this many days.")
        token.add_argument("--label", default="", help="What the token is for.")
        for command in (listing, create, set_role, set_password, deactivate, token):
            command.add_argument("--json", action="store_true", help="Print the API's JSON shape.")
        for command in (create, set_password):
            group = command.add_mutually_exclusive_group()
            group.add_argument("--password-stdin", action="store_true", help="Read the password from stdin.")
            group.add_argument("--generate", action="store_true", help="Generate a password and print it once.")

    def handle(self, *args: Any, **options: Any) -> None:
        self.as_json = options["json"]
        by = AuditContext.cli()
        action = options["action"]
        try:
            if action == "token-create":
                self._token_create(options, by)
                return
            if action == "list":
                users = selectors.user_list(role=options["role"], is_active=False if options["inactive"] else None)
                self._print_users(list(users))
                return
            if action == "create":
                password = self._password(options)
                user = services.user_create(
                    username=options["username"],
                    password=password,
                    role=options["role"],
                    email=options["email"],
                    display_name=options["display_name"],
                    by=by,
                )
            elif action == "set-role":
                user = services.user_set_role(user=self._user(options["username"]), role=options["role"], by=by)
            elif action == "set-password":
                user = self._user(options["username"])
                user = services.user_set_password(user=user, password=self._password(options), by=by)
            else:
                user = services.user_deactivate(user=self._user(options["username"]), by=by)
        except AccountError as exc:
            raise CommandError(exc.message) from None
        self._print_users([user], single=True)
        revoked = getattr(user, "tokens_revoked", None)
        if revoked is not None:
            # stderr: keeps --json output parseable.
            self.stderr.write(f"{revoked} API token{'s' if revoked != 1 else ''} of {user.username} revoked.")

    def _token_create(self, options: dict[str, Any], by: AuditContext) -> None:
        days = options["expires"]
        if days is not None and not 1 <= days <= 3650:
            raise CommandError("--expires must be between 1 and 3650 days.")
        token, secret = api_token_create(
            user=self._user(options["username"]),
            label=options["label"] or "created with manage.py users token-create",
            expires=timezone.now() + timedelta(days=days) if days else None,
            read_only=options["read_only"],
            by=by,
        )
        if self.as_json:
            data = {"prefix": token.prefix, "token": secret, "read_only": token.read_only, "expires": token.expires}
            self.stdout.write(json.dumps(data, default=str))
        else:
            # Only the secret on stdout, so `TOKEN=$(manage.py users token-create bot)` works; it is shown once.
            self.stdout.write(secret)

    def _user(self, username: str) -> User:
        user = selectors.user_get(username=username)
        if user is None:
            raise CommandError(f"No user named {username!r}.")
        return user

    def _password(self, options: dict[str, Any]) -> str:
        if options["generate"]:
            password = secrets.token_urlsafe(14)
            # stderr: keeps --json output parseable; shown once, never stored in clear.
            self.stderr.write(f"Generated password (shown once): {password}")
            return password
        if options["password_stdin"]:
            password = sys.stdin.readline().rstrip("\n")
        elif sys.stdin.isatty():
            password = getpass.getpass("Password: ")
            if getpass.getpass("Password (again): ") != password:
                raise CommandError("The passwords do not match.")
        else:
            raise CommandError("Give the password with --password-stdin, or use --generate.")
        if not password:
            raise CommandError("The password is empty.")
        return password

    def _print_users(self, users: list[User], *, single: bool = False) -> None:
        data = UserSerializer(users, many=True).data
        if self.as_json:
            self.stdout.write(json.dumps(data[0] if single else data, indent=2))
            return
        for row in data:
            state = "" if row["is_active"] else "  (inactive)"
            name = f" ({row['display_name']})" if row["display_name"] else ""
            self.stdout.write(f"{row['username']}{name}  {row['role']}  {row['email'] or '-'}{state}")
        if not single:
            self.stdout.write(f"{len(data)} user{'s' if len(data) != 1 else ''}.")
