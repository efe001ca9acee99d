"""``python -m devtools.oidc_provider --state DIR --port N --client-id ID --client-secret S --redirect-uri URI...``

Migrates its SQLite, registers the client (confidential, authorization code, RS256, no consent screen), serves on
127.0.0.1 and prints ``ready <port>`` when it accepts requests. Run by ``devtools.oidc_provider.OidcProvider``.
"""

from __future__ import annotations

import argparse
import os
import sys


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--state", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", required=True)
    parser.add_argument("--redirect-uri", action="append", default=[])
    parser.add_argument("--post-logout-redirect-uri", action="append", default=[])
    args = parser.parse_args()
    os.environ["OIDC_PROVIDER_STATE"] = args.state
    os.environ["DJANGO_SETTINGS_MODULE"] = "devtools.oidc_provider.settings"

    import django

    django.setup()
    from django.core.management import call_command
    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
    from django.core.wsgi import get_wsgi_application
    from oauth2_provider.models import Application

    call_command("migrate", verbosity=0, interactive=False)
    Application.objects.update_or_create(
        client_id=args.client_id,
        defaults={
            "name": "Enreach tools",
            "client_secret": args.client_secret,
            "client_type": Application.CLIENT_CONFIDENTIAL,
            "authorization_grant_type": Application.GRANT_AUTHORIZATION_CODE,
            "redirect_uris": " ".join(args.redirect_uri),
            "post_logout_redirect_uris": " ".join(args.post_logout_redirect_uri),
            "algorithm": Application.RS256_ALGORITHM,
            "skip_authorization": True,
        },
    )

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadedWSGIServer(("127.0.0.1", args.port), QuietHandler, allow_reuse_address=True)
    server.set_app(get_wsgi_application())
    print(f"ready {args.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        sys.stdout.flush()


if __name__ == "__main__":
    main()
