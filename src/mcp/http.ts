/**
 * The MCP endpoint on the API port: `/mcp`, streamable HTTP (MCP 2025-03-26 and later) in its
 * stateless form. Every request carries the agent's token (a service-account key, an OIDC
 * access token or a gateway session) as `Authorization: Bearer`; a request without a valid one
 * is answered 401 before any MCP message is read. Each request gets a server for its caller,
 * so nothing of one agent is reachable from another's request; what must last between calls
 * (grants, held statements) is kept by the AgentDesk per principal.
 */

import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type { FastifyInstance } from 'fastify';
import type { Authenticate } from '../api/server.ts';
import type { AgentDesk } from './agent-desk.ts';

export const MCP_PATH = '/mcp';

export function serveMcp(app: FastifyInstance, desk: AgentDesk, authenticate: Authenticate): void {
  // In a scope of its own, so that a body that is not JSON gets MCP's own error (JSON-RPC -32700), not the API's.
  void app.register(async (scope) => {
    scope.removeContentTypeParser('application/json');
    scope.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => done(null, body));
    scope.route({
      method: ['GET', 'POST', 'DELETE'],
      url: MCP_PATH,
      // Not a REST operation: the MCP protocol, described in docs/mcp.md.
      schema: { hide: true },
      handler: async (request, reply) => {
        const who = await authenticate(request.headers.authorization);
        if (!who) {
          return reply
            .code(401)
            .header('www-authenticate', 'Bearer realm="drawbridge"')
            .send(rpcError(-32001, 'unauthenticated: send the agent token as Authorization: Bearer'));
        }
        if (request.method !== 'POST') {
          // Stateless: no server-initiated stream to open (GET) and no session to end (DELETE).
          return reply.code(405).header('allow', 'POST').send(rpcError(-32000, 'method not allowed: POST MCP messages'));
        }
        let body: unknown;
        try {
          body = typeof request.body === 'string' ? JSON.parse(request.body) : request.body;
        } catch (error) {
          return reply.code(400).send(rpcError(-32700, `parse error: the body is not JSON (${(error as Error).message})`));
        }
        const server = desk.server(who);
        const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
        reply.hijack();
        reply.raw.on('close', () => {
          void transport.close();
          void server.close();
        });
        await server.connect(transport);
        await transport.handleRequest(request.raw, reply.raw, body);
      },
    });
  });
}

const rpcError = (code: number, message: string) => ({ jsonrpc: '2.0', error: { code, message }, id: null });
