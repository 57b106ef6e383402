"""The contract tier's machinery: the OpenAPI checker, documented corrections, the SDK judge."""
