"""Backup targets for export files: a local directory or an SFTP server."""
