"""What every feature needs and none owns: the clock, the shared services of a process (`RegistryContext`,
`FreshCache`) and the registry a request addresses (`tenancy`). Features import from here, never from each
other's modules for these."""
