"""A team's journeys in a package of their own, templates beside them: the example of
docs/authoring.md ("A journey package of your own"). Naming the package in
JOURNEYS_JOURNEY_MODULES loads both modules; tests/test_team_package.py is its test."""
