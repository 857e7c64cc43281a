/**
 * Client-sent ids and table names reach the logs before validation, so a
 * rejected one may be any size. Valid ones (ids up to LIMITS.idMaxChars,
 * table names shorter) are logged whole; anything longer is cut.
 */
import { LIMITS } from "../core/validation.js";

export function clipForLog(text: string): string {
  return text.length <= LIMITS.idMaxChars ? text : `${text.slice(0, LIMITS.idMaxChars)}…`;
}
