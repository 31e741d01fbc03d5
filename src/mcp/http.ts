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
  app.route({
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
          .send({ jsonrpc: '2.0', error: { code: -32001, message: 'unauthenticated: send the agent token as Authorization: Bearer' }, id: null });
      }
      if (request.method !== 'POST') {
        // Stateless: no server-initiated stream to open (GET) and no session to end (DELETE).
        return reply.code(405).header('allow', 'POST').send({ jsonrpc: '2.0', error: { code: -32000, message: 'method not allowed: POST MCP messages' }, id: null });
      }
      const server = desk.server(who);
      const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
      reply.hijack();
      reply.raw.on('close', () => {
        void transport.close();
        void server.close();
      });
      await server.connect(transport);
      await transport.handleRequest(request.raw, reply.raw, request.body);
    },
  });
}
