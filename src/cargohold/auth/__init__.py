"""Who may do what: identities, the token service, roles, scope maps, anonymous pull, network rules, audit."""
