-- langgraph v5 down: nothing to undo.
SELECT 1;
