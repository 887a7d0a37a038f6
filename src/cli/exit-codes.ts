/** `port` exit codes: 0 ok, 1 the command's check failed or was refused, 2 usage or config error. */
export const EXIT_OK = 0;
export const EXIT_FAILED = 1;
export const EXIT_USAGE = 2;
