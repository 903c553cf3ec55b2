"""The operator's side: moderation and bible actions, the audit log, status, export and the
Community's Cut."""
