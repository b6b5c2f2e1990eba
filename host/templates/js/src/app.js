// The component's entry point: wasi:http's incoming handler, answering with
// the routes in routes.js.
import { serve } from '../lib/wasmhouse.js';
import { app } from './routes.js';

export const incomingHandler = serve(app);
