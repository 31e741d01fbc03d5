// Decodes framed PostgreSQL v3 messages (see framer.ts) into typed values.
//
// Guarantees: strict. An unknown type byte, a truncated field, a missing NUL
// terminator, trailing bytes, a length below -1, a count larger than the body
// can hold, a format code other than 0/1 and invalid UTF-8 in any string all
// throw ProtocolError; nothing else is thrown for any input. Reads are bounds
// checked and no allocation is sized by a count before the count is checked
// against the bytes that remain.
// Strings: UTF-8 only. Invalid UTF-8 is rejected, not replaced, because the
// gateway inspects SQL and names and must see exactly what the server will see;
// connections must therefore use client_encoding UTF8.
// Buffers in the results are views into the frame body (no copy).
// Limits: counts are unsigned 16-bit as PostgreSQL reads them; semantic checks
// beyond one message (e.g. which 'p' variant is expected) are the caller's.

import { Buffer, isUtf8 } from 'node:buffer';
import type { Frame } from './framer.ts';
import {
  CANCEL_REQUEST_CODE,
  GSSENC_REQUEST_CODE,
  SSL_REQUEST_CODE,
  type BackendMessage,
  type ErrorField,
  type ErrorFields,
  type FieldDescription,
  type FrontendMessage,
  type StartupRequest,
} from './messages.ts';

export class ProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProtocolError';
  }
}

/**
 * A well-framed message whose text is not UTF-8. The stream is still in step, so a caller may
 * refuse this one message and go on.
 */
export class NotUtf8Error extends ProtocolError {
  constructor(message: string) {
    super(message);
    this.name = 'NotUtf8Error';
  }
}

/** Largest secret key accepted (protocol 3.2). */
export const MAX_SECRET_KEY_LENGTH = 256;
const MIN_SECRET_KEY_LENGTH = 4;

/** Bounds-checked cursor over one message body; every failure names the message. */
class Reader {
  readonly buf: Buffer;
  readonly what: string;
  pos = 0;
  constructor(buf: Buffer, what: string) {
    this.buf = buf;
    this.what = what;
  }
  get remaining(): number {
    return this.buf.length - this.pos;
  }
  fail(problem: string): never {
    throw new ProtocolError(`${this.what}: ${problem}`);
  }
  need(n: number, field: string): void {
    if (this.remaining < n) this.fail(`${field} truncated`);
  }
  byte(field: string): number {
    this.need(1, field);
    return this.buf[this.pos++] as number;
  }
  int16(field: string): number {
    this.need(2, field);
    const v = this.buf.readInt16BE(this.pos);
    this.pos += 2;
    return v;
  }
  uint16(field: string): number {
    this.need(2, field);
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }
  int32(field: string): number {
    this.need(4, field);
    const v = this.buf.readInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  uint32(field: string): number {
    this.need(4, field);
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  cstring(field: string): string {
    const nul = this.buf.indexOf(0, this.pos);
    if (nul === -1) this.fail(`${field} is missing its NUL terminator`);
    const s = utf8(this.buf, this.pos, nul, this, field);
    this.pos = nul + 1;
    return s;
  }
  bytes(n: number, field: string): Buffer {
    if (n > this.remaining) this.fail(`${field} length exceeds message`);
    const b = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
  rest(): Buffer {
    const b = this.buf.subarray(this.pos);
    this.pos = this.buf.length;
    return b;
  }
  /** An int32 length then that many bytes; -1 means NULL. */
  nullableBytes(field: string): Buffer | null {
    const len = this.int32(`${field} length`);
    if (len === -1) return null;
    if (len < -1) this.fail(`${field} has negative length ${len}`);
    return this.bytes(len, field);
  }
  /** `n` nullable values (int32 length, -1 = NULL, then bytes); the hot path of DataRow and Bind. */
  nullables(n: number, label: string): (Buffer | null)[] {
    const buf = this.buf;
    const out: (Buffer | null)[] = [];
    for (let i = 0; i < n; i++) {
      if (buf.length - this.pos < 4) this.fail(`${label} ${i + 1} length truncated`);
      const len = buf.readInt32BE(this.pos);
      this.pos += 4;
      if (len === -1) {
        out.push(null);
        continue;
      }
      if (len < -1) this.fail(`${label} ${i + 1} has negative length ${len}`);
      if (len > buf.length - this.pos) this.fail(`${label} ${i + 1} length exceeds message`);
      out.push(buf.subarray(this.pos, this.pos + len));
      this.pos += len;
    }
    return out;
  }
  /** `n` unsigned 32-bit values (OIDs). */
  uint32s(n: number, label: string): number[] {
    const out: number[] = [];
    if (n * 4 > this.remaining) this.fail(`${label} truncated`);
    for (let i = 0; i < n; i++) {
      out.push(this.buf.readUInt32BE(this.pos));
      this.pos += 4;
    }
    return out;
  }
  /** A count of items each at least `minSize` bytes; checked against what remains. */
  count(field: string, minSize: number): number {
    const n = this.uint16(field);
    if (n * minSize > this.remaining) this.fail(`${field} ${n} exceeds message`);
    return n;
  }
  format(field: string): number {
    const f = this.int16(field);
    if (f !== 0 && f !== 1) this.fail(`${field} ${f} is not 0 (text) or 1 (binary)`);
    return f;
  }
  formats(field: string): number[] {
    const n = this.count(`${field} count`, 2);
    const out: number[] = [];
    for (let i = 0; i < n; i++) out.push(this.format(`${field} ${i + 1}`));
    return out;
  }
  end(): void {
    if (this.pos !== this.buf.length) this.fail(`${this.buf.length - this.pos} trailing byte(s)`);
  }
}

function utf8(buf: Buffer, start: number, end: number, r: Reader, field: string): string {
  // Pure-ASCII fast path is inside isUtf8 (simdutf); the check runs on a view, no copy.
  if (!isUtf8(buf.subarray(start, end))) throw new NotUtf8Error(`${r.what}: ${field} is not valid UTF-8`);
  return buf.toString('utf8', start, end);
}

function typeName(type: number): string {
  return type >= 0x20 && type < 0x7f ? `'${String.fromCharCode(type)}'` : `0x${type.toString(16).padStart(2, '0')}`;
}

// ---------------------------------------------------------------- startup

export function decodeStartup(frame: Frame): StartupRequest {
  if (frame.type !== 0) throw new ProtocolError(`startup packet expected, got typed message ${typeName(frame.type)}`);
  const r = new Reader(frame.body, 'startup packet');
  const code = r.uint32('protocol version');
  switch (code) {
    case SSL_REQUEST_CODE:
      r.end();
      return { type: 'SSLRequest' };
    case GSSENC_REQUEST_CODE:
      r.end();
      return { type: 'GSSENCRequest' };
    case CANCEL_REQUEST_CODE: {
      const c = new Reader(frame.body, 'CancelRequest');
      c.pos = 4;
      const processId = c.int32('process id');
      const secretKey = c.rest();
      if (secretKey.length < MIN_SECRET_KEY_LENGTH || secretKey.length > MAX_SECRET_KEY_LENGTH) {
        c.fail(`secret key length ${secretKey.length} is outside [${MIN_SECRET_KEY_LENGTH}, ${MAX_SECRET_KEY_LENGTH}]`);
      }
      return { type: 'CancelRequest', processId, secretKey };
    }
  }
  const s = new Reader(frame.body, 'StartupMessage');
  s.pos = 4;
  const major = code >>> 16;
  if (major !== 3) s.fail(`unsupported protocol version ${major}.${code & 0xffff}`);
  const params: Record<string, string> = Object.create(null);
  for (;;) {
    const name = s.cstring('parameter name');
    if (name === '') break;
    if (Object.hasOwn(params, name)) s.fail(`duplicate parameter "${name}"`);
    params[name] = s.cstring(`parameter "${name}" value`);
  }
  s.end();
  return { type: 'StartupMessage', protocolVersion: code, params };
}

// ---------------------------------------------------------------- frontend

export function decodeFrontend(frame: Frame): FrontendMessage {
  const body = frame.body;
  switch (frame.type) {
    case 0x51 /* Q */: {
      const r = new Reader(body, 'Query');
      const sql = r.cstring('query string');
      r.end();
      return { type: 'Query', sql };
    }
    case 0x50 /* P */: {
      const r = new Reader(body, 'Parse');
      const name = r.cstring('statement name');
      const sql = r.cstring('query string');
      const n = r.count('parameter type count', 4);
      const paramTypes = r.uint32s(n, 'parameter types');
      r.end();
      return { type: 'Parse', name, sql, paramTypes };
    }
    case 0x42 /* B */: {
      const r = new Reader(body, 'Bind');
      const portal = r.cstring('portal name');
      const statement = r.cstring('statement name');
      const paramFormats = r.formats('parameter format');
      const n = r.count('parameter count', 4);
      if (paramFormats.length > 1 && paramFormats.length !== n) {
        r.fail(`${paramFormats.length} parameter formats but ${n} parameters`);
      }
      const params = r.nullables(n, 'parameter');
      const resultFormats = r.formats('result format');
      r.end();
      return { type: 'Bind', portal, statement, paramFormats, params, resultFormats };
    }
    case 0x44 /* D */:
    case 0x43 /* C */: {
      const what = frame.type === 0x44 ? 'Describe' : 'Close';
      const r = new Reader(body, what);
      const target = r.byte('target');
      if (target !== 0x53 && target !== 0x50) r.fail(`target ${typeName(target)} is not 'S' or 'P'`);
      const name = r.cstring('name');
      r.end();
      return { type: what, target: target === 0x53 ? 'S' : 'P', name };
    }
    case 0x45 /* E */: {
      const r = new Reader(body, 'Execute');
      const portal = r.cstring('portal name');
      const maxRows = r.int32('row limit');
      r.end();
      return { type: 'Execute', portal, maxRows };
    }
    case 0x53 /* S */:
      empty(body, 'Sync');
      return { type: 'Sync' };
    case 0x48 /* H */:
      empty(body, 'Flush');
      return { type: 'Flush' };
    case 0x58 /* X */:
      empty(body, 'Terminate');
      return { type: 'Terminate' };
    case 0x64 /* d */:
      return { type: 'CopyData', data: body };
    case 0x63 /* c */:
      empty(body, 'CopyDone');
      return { type: 'CopyDone' };
    case 0x66 /* f */: {
      const r = new Reader(body, 'CopyFail');
      const message = r.cstring('message');
      r.end();
      return { type: 'CopyFail', message };
    }
    case 0x46 /* F */: {
      const r = new Reader(body, 'FunctionCall');
      const functionOid = r.uint32('function oid');
      const argFormats = r.formats('argument format');
      const n = r.count('argument count', 4);
      if (argFormats.length > 1 && argFormats.length !== n) {
        r.fail(`${argFormats.length} argument formats but ${n} arguments`);
      }
      const args = r.nullables(n, 'argument');
      const resultFormat = r.format('result format');
      r.end();
      return { type: 'FunctionCall', functionOid, argFormats, args, resultFormat };
    }
    case 0x70 /* p */:
      return { type: 'PasswordMessage', data: body };
    default:
      throw new ProtocolError(`unknown frontend message type ${typeName(frame.type)}`);
  }
}

function empty(body: Buffer, what: string): void {
  if (body.length !== 0) throw new ProtocolError(`${what}: ${body.length} trailing byte(s)`);
}

/** The body of a 'p' message answering AuthenticationCleartextPassword or AuthenticationMD5Password. */
export function decodePassword(body: Buffer): string {
  const r = new Reader(body, 'PasswordMessage');
  const password = r.cstring('password');
  r.end();
  return password;
}

/** The body of a 'p' message answering AuthenticationSASL. `data` is null when the client sent length -1. */
export function decodeSASLInitialResponse(body: Buffer): { mechanism: string; data: Buffer | null } {
  const r = new Reader(body, 'SASLInitialResponse');
  const mechanism = r.cstring('mechanism');
  if (mechanism === '') r.fail('mechanism is empty');
  const data = r.nullableBytes('initial response');
  r.end();
  return { mechanism, data };
}

/** The body of a 'p' message answering AuthenticationSASLContinue: the raw SASL data. */
export function decodeSASLResponse(body: Buffer): Buffer {
  return body;
}

// ---------------------------------------------------------------- backend

export function decodeBackend(frame: Frame): BackendMessage {
  const body = frame.body;
  switch (frame.type) {
    case 0x52 /* R */:
      return decodeAuthentication(body);
    case 0x4b /* K */: {
      const r = new Reader(body, 'BackendKeyData');
      const processId = r.int32('process id');
      const secretKey = r.rest();
      if (secretKey.length < MIN_SECRET_KEY_LENGTH || secretKey.length > MAX_SECRET_KEY_LENGTH) {
        r.fail(`secret key length ${secretKey.length} is outside [${MIN_SECRET_KEY_LENGTH}, ${MAX_SECRET_KEY_LENGTH}]`);
      }
      return { type: 'BackendKeyData', processId, secretKey };
    }
    case 0x32 /* 2 */:
      empty(body, 'BindComplete');
      return { type: 'BindComplete' };
    case 0x33 /* 3 */:
      empty(body, 'CloseComplete');
      return { type: 'CloseComplete' };
    case 0x43 /* C */: {
      const r = new Reader(body, 'CommandComplete');
      const tag = r.cstring('command tag');
      r.end();
      return { type: 'CommandComplete', tag };
    }
    case 0x64 /* d */:
      return { type: 'CopyData', data: body };
    case 0x63 /* c */:
      empty(body, 'CopyDone');
      return { type: 'CopyDone' };
    case 0x47 /* G */:
      return { type: 'CopyInResponse', ...copyResponse(body, 'CopyInResponse') };
    case 0x48 /* H */:
      return { type: 'CopyOutResponse', ...copyResponse(body, 'CopyOutResponse') };
    case 0x57 /* W */:
      return { type: 'CopyBothResponse', ...copyResponse(body, 'CopyBothResponse') };
    case 0x44 /* D */: {
      const r = new Reader(body, 'DataRow');
      const n = r.count('column count', 4);
      const values = r.nullables(n, 'column');
      r.end();
      return { type: 'DataRow', values };
    }
    case 0x49 /* I */:
      empty(body, 'EmptyQueryResponse');
      return { type: 'EmptyQueryResponse' };
    case 0x45 /* E */:
      return { type: 'ErrorResponse', fields: errorFields(body, 'ErrorResponse') };
    case 0x4e /* N */:
      return { type: 'NoticeResponse', fields: errorFields(body, 'NoticeResponse') };
    case 0x56 /* V */: {
      const r = new Reader(body, 'FunctionCallResponse');
      const value = r.nullableBytes('result');
      r.end();
      return { type: 'FunctionCallResponse', value };
    }
    case 0x76 /* v */: {
      const r = new Reader(body, 'NegotiateProtocolVersion');
      const newestMinor = r.int32('newest minor version');
      if (newestMinor < 0) r.fail(`newest minor version ${newestMinor} is negative`);
      const n = r.int32('option count');
      // Each name takes at least its NUL.
      if (n < 0 || n > r.remaining) r.fail(`option count ${n} exceeds message`);
      const unrecognized: string[] = [];
      for (let i = 0; i < n; i++) unrecognized.push(r.cstring(`option ${i + 1}`));
      r.end();
      return { type: 'NegotiateProtocolVersion', newestMinor, unrecognized };
    }
    case 0x6e /* n */:
      empty(body, 'NoData');
      return { type: 'NoData' };
    case 0x41 /* A */: {
      const r = new Reader(body, 'NotificationResponse');
      const processId = r.int32('process id');
      const channel = r.cstring('channel');
      const payload = r.cstring('payload');
      r.end();
      return { type: 'NotificationResponse', processId, channel, payload };
    }
    case 0x74 /* t */: {
      const r = new Reader(body, 'ParameterDescription');
      const n = r.count('parameter count', 4);
      const typeOids = r.uint32s(n, 'parameter types');
      r.end();
      return { type: 'ParameterDescription', typeOids };
    }
    case 0x53 /* S */: {
      const r = new Reader(body, 'ParameterStatus');
      const name = r.cstring('name');
      const value = r.cstring('value');
      r.end();
      return { type: 'ParameterStatus', name, value };
    }
    case 0x31 /* 1 */:
      empty(body, 'ParseComplete');
      return { type: 'ParseComplete' };
    case 0x73 /* s */:
      empty(body, 'PortalSuspended');
      return { type: 'PortalSuspended' };
    case 0x5a /* Z */: {
      const r = new Reader(body, 'ReadyForQuery');
      const s = r.byte('transaction status');
      r.end();
      if (s === 0x49) return { type: 'ReadyForQuery', status: 'I' };
      if (s === 0x54) return { type: 'ReadyForQuery', status: 'T' };
      if (s === 0x45) return { type: 'ReadyForQuery', status: 'E' };
      return r.fail(`transaction status ${typeName(s)} is not 'I', 'T' or 'E'`);
    }
    case 0x54 /* T */: {
      const r = new Reader(body, 'RowDescription');
      // name NUL + 18 bytes of fixed fields
      const n = r.count('field count', 19);
      const fields: FieldDescription[] = [];
      for (let i = 0; i < n; i++) {
        const f = `field ${i + 1}`;
        fields.push({
          name: r.cstring(`${f} name`),
          tableOid: r.uint32(`${f} table oid`),
          columnAttr: r.int16(`${f} column number`),
          typeOid: r.uint32(`${f} type oid`),
          typeSize: r.int16(`${f} type size`),
          typeModifier: r.int32(`${f} type modifier`),
          format: r.format(`${f} format`),
        });
      }
      r.end();
      return { type: 'RowDescription', fields };
    }
    default:
      throw new ProtocolError(`unknown backend message type ${typeName(frame.type)}`);
  }
}

function decodeAuthentication(body: Buffer): BackendMessage {
  const r = new Reader(body, 'Authentication');
  const code = r.int32('request code');
  switch (code) {
    case 0:
      r.end();
      return { type: 'AuthenticationOk' };
    case 2:
      r.end();
      return { type: 'AuthenticationKerberosV5' };
    case 3:
      r.end();
      return { type: 'AuthenticationCleartextPassword' };
    case 5: {
      const salt = r.bytes(4, 'salt');
      r.end();
      return { type: 'AuthenticationMD5Password', salt };
    }
    case 7:
      r.end();
      return { type: 'AuthenticationGSS' };
    case 8:
      return { type: 'AuthenticationGSSContinue', data: r.rest() };
    case 9:
      r.end();
      return { type: 'AuthenticationSSPI' };
    case 10: {
      const mechanisms: string[] = [];
      for (;;) {
        const m = r.cstring(`mechanism ${mechanisms.length + 1}`);
        if (m === '') break;
        mechanisms.push(m);
      }
      r.end();
      if (mechanisms.length === 0) r.fail('SASL mechanism list is empty');
      return { type: 'AuthenticationSASL', mechanisms };
    }
    case 11:
      return { type: 'AuthenticationSASLContinue', data: r.rest() };
    case 12:
      return { type: 'AuthenticationSASLFinal', data: r.rest() };
    default:
      return r.fail(`unknown request code ${code}`);
  }
}

function copyResponse(body: Buffer, what: string): { format: number; columnFormats: number[] } {
  const r = new Reader(body, what);
  const format = r.byte('overall format');
  if (format !== 0 && format !== 1) r.fail(`overall format ${format} is not 0 (text) or 1 (binary)`);
  const columnFormats = r.formats('column format');
  r.end();
  return { format, columnFormats };
}

function errorFields(body: Buffer, what: string): ErrorField[] {
  const r = new Reader(body, what);
  const fields: ErrorField[] = [];
  for (;;) {
    const code = r.byte('field code');
    if (code === 0) break;
    if (code > 0x7f) r.fail(`field code 0x${code.toString(16)} is not ASCII`);
    const c = String.fromCharCode(code);
    fields.push([c, r.cstring(`field '${c}'`)]);
  }
  r.end();
  return fields;
}

const FIELD_NAMES: Readonly<Record<string, keyof ErrorFields>> = Object.assign(Object.create(null), {
  S: 'severity',
  V: 'severityNonLocalized',
  C: 'code',
  M: 'message',
  D: 'detail',
  H: 'hint',
  P: 'position',
  p: 'internalPosition',
  q: 'internalQuery',
  W: 'where',
  s: 'schema',
  t: 'table',
  c: 'column',
  d: 'dataType',
  n: 'constraint',
  F: 'file',
  L: 'line',
  R: 'routine',
});

/**
 * Names the fields of an ErrorResponse / NoticeResponse. Unknown codes are
 * ignored (as the protocol asks); a repeated code keeps its last value, as libpq does.
 */
/** The fields of an ErrorResponse or NoticeResponse body, for callers that hold only the body. */
export function decodeErrorFields(body: Buffer): ErrorField[] {
  return errorFields(body, 'ErrorResponse');
}

export function errorFieldsToObject(fields: readonly ErrorField[]): ErrorFields {
  const out: ErrorFields = {};
  for (const [code, value] of fields) {
    const name = FIELD_NAMES[code];
    if (name !== undefined) out[name] = value;
  }
  return out;
}
