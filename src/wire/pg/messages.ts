// PostgreSQL v3 wire messages as typed values: the shapes `decode.ts` produces
// and `encode.ts` consumes.
//
// Guarantees: every union is discriminated on `type`, the message's name in
// the protocol documentation. Buffers handed out by the decoders are views into
// the frame (no copy); copy them if you keep them after mutating the frame.
// Limits: protocol 3.0 and 3.2 only (3.2 = variable-length cancel keys);
// replication sub-protocol messages travel inside CopyData and are not parsed.

// ---------------------------------------------------------------- shared

/** Column / parameter format code: 0 = text, 1 = binary. */
export type FormatCode = number;

/** CopyData, sent both ways. */
export interface CopyData {
  type: 'CopyData';
  data: Buffer;
}
export interface CopyDone {
  type: 'CopyDone';
}

// ---------------------------------------------------------------- startup (untyped)

export interface SSLRequest {
  type: 'SSLRequest';
}
export interface GSSENCRequest {
  type: 'GSSENCRequest';
}
export interface CancelRequest {
  type: 'CancelRequest';
  processId: number;
  /** 4 bytes in protocol 3.0; up to 256 in 3.2. */
  secretKey: Buffer;
}
export interface StartupMessage {
  type: 'StartupMessage';
  /** major << 16 | minor; major is always 3. */
  protocolVersion: number;
  /** Null-prototype object; insertion (wire) order kept; duplicate names are rejected. */
  params: Record<string, string>;
}
export type StartupRequest = SSLRequest | GSSENCRequest | CancelRequest | StartupMessage;

// ---------------------------------------------------------------- frontend (typed)

export interface Query {
  type: 'Query';
  sql: string;
}
export interface Parse {
  type: 'Parse';
  name: string;
  sql: string;
  /** Type OIDs (unsigned 32 bit); 0 = unspecified. */
  paramTypes: number[];
}
export interface Bind {
  type: 'Bind';
  portal: string;
  statement: string;
  /** Zero, one (applies to all) or one per parameter. */
  paramFormats: FormatCode[];
  params: (Buffer | null)[];
  resultFormats: FormatCode[];
}
export interface Describe {
  type: 'Describe';
  target: 'S' | 'P';
  name: string;
}
export interface Execute {
  type: 'Execute';
  portal: string;
  /** 0 (or negative) = no limit. */
  maxRows: number;
}
export interface Close {
  type: 'Close';
  target: 'S' | 'P';
  name: string;
}
export interface Sync {
  type: 'Sync';
}
export interface Flush {
  type: 'Flush';
}
export interface Terminate {
  type: 'Terminate';
}
export interface CopyFail {
  type: 'CopyFail';
  message: string;
}
export interface FunctionCall {
  type: 'FunctionCall';
  functionOid: number;
  argFormats: FormatCode[];
  args: (Buffer | null)[];
  resultFormat: FormatCode;
}
/**
 * The 'p' message. Its body means a cleartext/MD5 password, a GSSAPI/SSPI token,
 * a SASLInitialResponse or a SASLResponse depending on the authentication
 * request that preceded it; read it with `decodePassword`,
 * `decodeSASLInitialResponse` or `decodeSASLResponse`.
 */
export interface PasswordMessage {
  type: 'PasswordMessage';
  data: Buffer;
}

export type FrontendMessage =
  | Query
  | Parse
  | Bind
  | Describe
  | Execute
  | Close
  | Sync
  | Flush
  | Terminate
  | CopyData
  | CopyDone
  | CopyFail
  | FunctionCall
  | PasswordMessage;

// ---------------------------------------------------------------- backend

export interface AuthenticationOk {
  type: 'AuthenticationOk';
}
export interface AuthenticationKerberosV5 {
  type: 'AuthenticationKerberosV5';
}
export interface AuthenticationCleartextPassword {
  type: 'AuthenticationCleartextPassword';
}
export interface AuthenticationMD5Password {
  type: 'AuthenticationMD5Password';
  /** Exactly 4 bytes. */
  salt: Buffer;
}
export interface AuthenticationGSS {
  type: 'AuthenticationGSS';
}
export interface AuthenticationGSSContinue {
  type: 'AuthenticationGSSContinue';
  data: Buffer;
}
export interface AuthenticationSSPI {
  type: 'AuthenticationSSPI';
}
export interface AuthenticationSASL {
  type: 'AuthenticationSASL';
  /** Non-empty names, in server preference order. */
  mechanisms: string[];
}
export interface AuthenticationSASLContinue {
  type: 'AuthenticationSASLContinue';
  data: Buffer;
}
export interface AuthenticationSASLFinal {
  type: 'AuthenticationSASLFinal';
  data: Buffer;
}
export interface BackendKeyData {
  type: 'BackendKeyData';
  processId: number;
  /** 4 bytes in protocol 3.0; up to 256 in 3.2. */
  secretKey: Buffer;
}
export interface BindComplete {
  type: 'BindComplete';
}
export interface CloseComplete {
  type: 'CloseComplete';
}
export interface CommandComplete {
  type: 'CommandComplete';
  tag: string;
}
export interface CopyResponseBody {
  /** Overall format: 0 = text, 1 = binary. */
  format: FormatCode;
  columnFormats: FormatCode[];
}
export interface CopyInResponse extends CopyResponseBody {
  type: 'CopyInResponse';
}
export interface CopyOutResponse extends CopyResponseBody {
  type: 'CopyOutResponse';
}
export interface CopyBothResponse extends CopyResponseBody {
  type: 'CopyBothResponse';
}
export interface DataRow {
  type: 'DataRow';
  values: (Buffer | null)[];
}
export interface EmptyQueryResponse {
  type: 'EmptyQueryResponse';
}
/** One field of an ErrorResponse / NoticeResponse: a one-character ASCII code and its value. */
export type ErrorField = readonly [code: string, value: string];
export interface ErrorResponse {
  type: 'ErrorResponse';
  /** In wire order. */
  fields: ErrorField[];
}
export interface NoticeResponse {
  type: 'NoticeResponse';
  fields: ErrorField[];
}
export interface FunctionCallResponse {
  type: 'FunctionCallResponse';
  value: Buffer | null;
}
export interface NegotiateProtocolVersion {
  type: 'NegotiateProtocolVersion';
  newestMinor: number;
  /** Protocol options (`_pq_.*`) the server did not recognise. */
  unrecognized: string[];
}
export interface NoData {
  type: 'NoData';
}
export interface NotificationResponse {
  type: 'NotificationResponse';
  processId: number;
  channel: string;
  payload: string;
}
export interface ParameterDescription {
  type: 'ParameterDescription';
  typeOids: number[];
}
export interface ParameterStatus {
  type: 'ParameterStatus';
  name: string;
  value: string;
}
export interface ParseComplete {
  type: 'ParseComplete';
}
export interface PortalSuspended {
  type: 'PortalSuspended';
}
export type TransactionStatus = 'I' | 'T' | 'E';
export interface ReadyForQuery {
  type: 'ReadyForQuery';
  status: TransactionStatus;
}
export interface FieldDescription {
  name: string;
  /** 0 when the column is not a table column. */
  tableOid: number;
  columnAttr: number;
  typeOid: number;
  typeSize: number;
  typeModifier: number;
  format: FormatCode;
}
export interface RowDescription {
  type: 'RowDescription';
  fields: FieldDescription[];
}

export type BackendMessage =
  | AuthenticationOk
  | AuthenticationKerberosV5
  | AuthenticationCleartextPassword
  | AuthenticationMD5Password
  | AuthenticationGSS
  | AuthenticationGSSContinue
  | AuthenticationSSPI
  | AuthenticationSASL
  | AuthenticationSASLContinue
  | AuthenticationSASLFinal
  | BackendKeyData
  | BindComplete
  | CloseComplete
  | CommandComplete
  | CopyData
  | CopyDone
  | CopyInResponse
  | CopyOutResponse
  | CopyBothResponse
  | DataRow
  | EmptyQueryResponse
  | ErrorResponse
  | NoticeResponse
  | FunctionCallResponse
  | NegotiateProtocolVersion
  | NoData
  | NotificationResponse
  | ParameterDescription
  | ParameterStatus
  | ParseComplete
  | PortalSuspended
  | ReadyForQuery
  | RowDescription;

/** ErrorResponse / NoticeResponse fields by name (PostgreSQL docs, "Error and Notice Message Fields"). */
export interface ErrorFields {
  severity?: string;
  severityNonLocalized?: string;
  code?: string;
  message?: string;
  detail?: string;
  hint?: string;
  position?: string;
  internalPosition?: string;
  internalQuery?: string;
  where?: string;
  schema?: string;
  table?: string;
  column?: string;
  dataType?: string;
  constraint?: string;
  file?: string;
  line?: string;
  routine?: string;
}

/** Startup-packet request codes (the int32 after the length). */
export const SSL_REQUEST_CODE = 80877103;
export const GSSENC_REQUEST_CODE = 80877104;
export const CANCEL_REQUEST_CODE = 80877102;
