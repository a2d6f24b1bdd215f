"""Cases (appeals from every channel): ``gateway cases``; the store side is gateway.store.cases."""
