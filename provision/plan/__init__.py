"""plan.yaml: schema, loading with line-accurate errors, and the known-model table."""

from provision.plan.load import LoadedPlan, load_plan
from provision.plan.schema import Constraints, ModelSpec, Plan, Resources, Workload

__all__ = ["Constraints", "LoadedPlan", "ModelSpec", "Plan", "Resources", "Workload", "load_plan"]
