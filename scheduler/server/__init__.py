"""The scheduler's imperative shell: config, auth, the controller that applies core
decisions (persist, publish, send orders), the gRPC servicers and the server."""
