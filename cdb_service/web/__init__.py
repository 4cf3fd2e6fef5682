"""HTTP plumbing shared by every controller: request ids, problem details, health."""
