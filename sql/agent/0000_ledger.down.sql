-- agent v0 down: never run by the agent itself; here for completeness.
DROP TABLE IF EXISTS ledger;
DROP TABLE IF EXISTS agent_migrations;
