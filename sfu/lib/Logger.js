'use strict';

// One logger tree, `privastream.sfu.<area>`, lines like the Python side:
//   2025-01-01T00:00:00.000Z INFO privastream.sfu.room create() | room created [room:demo]
const LEVELS = { debug: 10, info: 20, warn: 30, error: 40 };
let threshold = LEVELS.info;

class Logger
{
	static setLevel(name)
	{
		if (!(name in LEVELS))
			throw new Error(`SFU_LOG_LEVEL must be one of ${Object.keys(LEVELS).join(', ')} (got '${name}')`);
		threshold = LEVELS[name];
	}

	constructor(area)
	{
		this._name = `privastream.sfu.${area}`;
	}

	debug(msg, ...args) { this._write('debug', msg, args); }
	info(msg, ...args) { this._write('info', msg, args); }
	warn(msg, ...args) { this._write('warn', msg, args); }
	error(msg, ...args) { this._write('error', msg, args); }

	_write(level, msg, args)
	{
		if (LEVELS[level] < threshold)
			return;

		let i = 0;
		const text = msg.replace(/%s/g, () => String(args[i++]));

		process.stdout.write(`${new Date().toISOString()} ${level.toUpperCase()} ${this._name} ${text}\n`);
	}
}

module.exports = { Logger };
