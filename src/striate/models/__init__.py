"""The model zoo. Importing this package registers every built-in architecture."""

# Each import below fills the registry with that family's builders.
from striate.models import alexnet, lenet, neocognitron, resnet, resnet_cifar  # noqa: F401
from striate.models._registry import (
    ModelSpec,
    count_parameters,
    create_model,
    get_model_spec,
    list_models,
    register_model,
)

__all__ = [
    "ModelSpec",
    "count_parameters",
    "create_model",
    "get_model_spec",
    "list_models",
    "register_model",
]
