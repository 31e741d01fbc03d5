export {
  loadConfig,
  parseConfig,
  ConfigError,
  defaultConfig,
  isLoopback,
  DEFAULT_STORE,
  DEFAULT_API_LISTEN,
  DEFAULT_POSTGRES_LISTEN,
  DEFAULT_POSTGRES_AUTH,
  DEFAULT_MAX_MESSAGE_LENGTH,
  DEFAULT_LOG_LEVEL,
  DEFAULT_TARGET_PORT,
  DEFAULT_RETENTION_INTERVAL_MS,
} from './config.ts';
export type { Config, Env, HostPort, LogLevel, ParseOptions, PostgresAuth, RetentionSettings } from './config.ts';
