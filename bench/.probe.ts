const what = process.argv[2] ?? 'none';
const r0 = process.memoryUsage();
if (what === 'device') await import('@switchyard/device');
if (what === 'zod') await import('zod');
if (what === 'sel') await import('@switchyard/selector');
if (what === 'prof') await import('@switchyard/profile');
if (what === 'err') await import('@switchyard/errors');
if (what === 'azure') await import('azure-iot-device');
if (what === 'azmqtt') { await import('azure-iot-device'); await import('azure-iot-device-mqtt'); }
if (what === 'devmqtt') { await import('@switchyard/device'); await import('azure-iot-device-mqtt'); }
const m = process.memoryUsage();
console.log(what.padEnd(8), 'rss', (m.rss/1048576).toFixed(1), 'heapUsed', (m.heapUsed/1048576).toFixed(1), 'heapTotal', (m.heapTotal/1048576).toFixed(1), 'ext', (m.external/1048576).toFixed(1), 'maxRSS', (process.resourceUsage().maxRSS/1024).toFixed(1));
