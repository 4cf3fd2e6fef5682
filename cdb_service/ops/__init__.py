"""Operations endpoints: liveness, readiness (they look at every part of the service)."""
