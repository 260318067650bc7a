// Imported first by files that scan DEBUG output: every debug copy (express-session ships debug 2.x) reads
// DEBUG when it loads, so this must run before express-session and express are required.
process.env.DEBUG = '*';
process.env.DEBUG_COLORS = 'no';
export {};
