-- langgraph v5: a placeholder that keeps LangGraph's numbering. Never remove it.
SELECT 1;
