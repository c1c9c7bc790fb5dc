-- ef_qualified_name: a registered table's or view's name as SQL text, each part quoted, qualified
-- with its schema when it was registered with one (without, it resolves through the routines'
-- search_path: the library's schema). NULL for a NULL name. The routines that build statements from
-- registered names (switching, retiring and reporting projection versions) quote them here.
CREATE OR REPLACE FUNCTION ef_qualified_name(p_schema text, p_name text)
RETURNS text
LANGUAGE sql
IMMUTABLE
AS $$
    SELECT CASE WHEN p_name IS NULL THEN NULL
                WHEN p_schema IS NULL THEN format('%I', p_name)
                ELSE format('%I.%I', p_schema, p_name) END
$$;
