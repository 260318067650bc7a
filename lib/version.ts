/** Sent in the User-Agent of calls to Polar; a test keeps it equal to package.json's version. */
export const VERSION = '0.1.0';
