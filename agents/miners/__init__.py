"""Real miners driven through pyasic_rs: the split of a power target over miners
(`split`, pure), one group of miners (`group.MinerGroup`, the unit a Ray actor may
host) and the agent's FleetDriver over groups (`driver.MinerFleets`)."""
