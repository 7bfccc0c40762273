-- The audit's refused attempts (401, 403) are counted and pruned by status, newest first.
CREATE INDEX admin_audit_status ON admin_audit (status, id);
