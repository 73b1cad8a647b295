"""Pulumi programs: one ComponentResource per provider, turning a hardware plan into nodes.

Driven by provision.backends through Pulumi's Automation API, and testable offline with
pulumi.runtime.set_mocks (no CLI, no credentials).
"""
