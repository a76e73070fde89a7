"""Dagster wiring for sharegraph: definitions, resources, jobs, schedules and sensors."""
