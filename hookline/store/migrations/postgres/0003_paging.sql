-- Paging: one app's installations are listed a page at a time in (created_at, user_id)
-- order, which the index on app_id alone made a sort of all of them for every page.
DROP INDEX installations_app;
CREATE INDEX installations_app ON installations (app_id, created_at, user_id);
