"""The shipped journeys' fixture (`shop_for`: the API and a worker with the real templates)."""

from tests.journeys.conftest import shop_for  # noqa: F401
