"""Sign-in through a directory: LDAP / Active Directory (``ldap``) and OpenID Connect single sign-on (``oidc``).

These modules speak the protocols (django-auth-ldap and python-ldap, Authlib); what the directory's answer means for
a user here — role, active flag, refusal — is ``accounts.directory``.
"""
