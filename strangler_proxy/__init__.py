"""strangler: move a working monolith to microservices one endpoint at a time."""
