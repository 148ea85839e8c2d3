"""Mining fleets as the agent drives them: the interface (`fleet_driver.FleetDriver`,
with its in-process emulation), and real miners driven through pyasic_rs: the split of
a power target over miners (`split`, pure), one group of miners (`group.MinerGroup`,
the unit a Ray actor may host) and the FleetDriver over groups (`driver.MinerFleets`)."""
