"""The consent gate, purposes policy, minimization, pseudonymization and the audit log."""
