export { openStore, StoreConflictError } from './store.ts';
export type {
  Store,
  StoreKind,
  GrantRecord,
  NewGrant,
  SessionRecord,
  NewSession,
  SessionQuery,
  StatementRecord,
  NewStatement,
  StatementOutcome,
  Revocation,
  GrantQuery,
  AuditOutcome,
  NewAuditEvent,
  AuditRecord,
  AuditQuery,
} from './store.ts';
