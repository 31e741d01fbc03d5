/**
 * `drawbridge mcp`: the gateway's MCP server on stdio, for agents that start their tools as
 * programs (Claude Code, Cursor, ...). It authenticates to a running gateway with the agent's
 * token (DRAWBRIDGE_TOKEN: a service-account key or an OIDC access token; or the session
 * `drawbridge login` saved) and relays each MCP message to the gateway's `/mcp` endpoint and
 * each answer back, unchanged: the tools, their checks and their records are the gateway's.
 *
 * stdout carries MCP messages only; what goes wrong is said on stderr, and a request the
 * gateway could not answer gets a JSON-RPC error with the reason, so the agent is never left
 * waiting.
 */

import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { ApiClient } from './api-client.ts';
import { options, UsageError } from './args.ts';

export async function runMcp(args: readonly string[]): Promise<number> {
  const values = options(args, { gateway: { type: 'string' } });
  const client = await ApiClient.open(values.gateway);
  if (!(await client.token())) {
    throw new UsageError('drawbridge mcp needs the agent token: set DRAWBRIDGE_TOKEN (a service-account key) or run drawbridge login');
  }
  const upstream = new StreamableHTTPClientTransport(new URL('/mcp', `${client.gateway}/`), {
    // The token is read for each request, so that a saved session is refreshed while the agent runs.
    fetch: async (url, init) => {
      const headers = new Headers(init?.headers);
      headers.set('authorization', `Bearer ${(await client.token()) ?? ''}`);
      return fetch(url, { ...init, headers });
    },
  });
  const agent = new StdioServerTransport();
  // The agent is done when it closes our stdin (or the transport closes).
  const done = new Promise<void>((resolve) => {
    agent.onclose = () => resolve();
    process.stdin.once('end', resolve).once('close', resolve);
  });
  upstream.onmessage = (message) => void agent.send(message);
  upstream.onerror = (error) => process.stderr.write(`drawbridge mcp: ${error.message}\n`);
  agent.onmessage = (message: JSONRPCMessage) => {
    upstream.send(message).catch((error: Error) => {
      process.stderr.write(`drawbridge mcp: ${error.message}\n`);
      if ('id' in message && 'method' in message) {
        void agent.send({ jsonrpc: '2.0', id: message.id, error: { code: -32000, message: `the gateway at ${client.gateway} did not answer: ${error.message}` } });
      }
    });
  };
  await upstream.start();
  await agent.start();
  await done;
  await upstream.close();
  return 0;
}
