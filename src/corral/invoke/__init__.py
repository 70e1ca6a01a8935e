"""The data plane: synchronous and asynchronous invocation, throttling."""
