/**
 * What the service entry points share: flags, logs and announcements.
 *
 * @module
 */

export {
  type CommandSpec,
  type FlagSpec,
  type FlagValues,
  formatHostPort,
  helpText,
  type HostPort,
  parseFlags,
  parseHostPort,
  positiveInteger,
  UsageError,
} from "./flags.ts";
export {
  announce,
  createLogger,
  LOG_LEVELS,
  type LogFields,
  type LogFormat,
  type Logger,
  type LogLevel,
  SILENT_LOGGER,
} from "./logger.ts";
export { COMMON_FLAGS, EXIT_USAGE, type RunningService, runService } from "./run_service.ts";
