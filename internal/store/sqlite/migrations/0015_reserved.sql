-- Version 15: reserved for a change made in parallel (issue 13, operator
-- commands); replaced by it when the branches merge. Does nothing.
SELECT 1;
