-- langgraph v9 down: drops the column and the task paths it holds.
ALTER TABLE checkpoint_writes DROP COLUMN IF EXISTS task_path;
