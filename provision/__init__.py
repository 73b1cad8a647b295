"""provision: plan, create, converge and verify GPU/TPU clusters from one plan.yaml.

The package follows the pipeline: ``plan`` (schema, loading) → ``sizing`` → ``catalog`` →
``optimizer`` → ``estimate``; later stages (stacks, inventory, playbooks, verify) plug in beside.
"""

__version__ = "0.1.0"
