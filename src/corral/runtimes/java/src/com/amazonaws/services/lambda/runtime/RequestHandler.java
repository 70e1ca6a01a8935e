package com.amazonaws.services.lambda.runtime;

/** A handler taking a deserialized event, as in com.amazonaws:aws-lambda-java-core. */
public interface RequestHandler<I, O> {
    O handleRequest(I input, Context context);
}
