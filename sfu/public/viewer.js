// The room page: one mediasoup-client receive transport, driven over the SFU's
// HTTP API, with the session itself held open as a server-sent event stream.
// Bundled by esbuild at setup (public/bundle.js): no CDN.
//
// States shown: connecting -> waiting (no publisher) <-> live; reconnecting when
// the event stream or the transport drops, after which a fresh session starts.

import { Device } from 'mediasoup-client';

const RECONNECT_MS = 1000;

const roomId = decodeURIComponent(location.pathname.split('/').pop());
const token = new URLSearchParams(location.search).get('token');
const query = token ? `?token=${encodeURIComponent(token)}` : '';
const video = document.getElementById('video');
const overlay = document.getElementById('overlay');
const statusEl = document.getElementById('status');
const viewersEl = document.getElementById('viewers');
const unmuteButton = document.getElementById('unmute');

let device = null;
let session = null;

function setStatus(status, text)
{
	statusEl.className = `status ${status}`;
	statusEl.textContent = status;
	overlay.hidden = status === 'live';
	overlay.textContent = text;
	document.body.dataset.status = status;
}

async function api(action, body)
{
	const response = await fetch(`/api/rooms/${encodeURIComponent(roomId)}/viewers/${session.viewerId}/${action}${query}`, {
		method  : 'POST',
		headers : { 'Content-Type': 'application/json' },
		body    : JSON.stringify(body)
	});

	if (!response.ok)
		throw new Error(`${action}: ${response.status} ${(await response.text()).trim()}`);

	return response.json();
}

// mediasoup-client 3.18 (the last for Node 20) recognises browsers by user agent
// and does not know HeadlessChrome or Chromium releases newer than itself; they
// all speak standard unified-plan WebRTC, which its Chrome111 handler drives.
function createDevice()
{
	try
	{
		return new Device();
	}
	catch (error)
	{
		if (error.name !== 'UnsupportedError' || typeof RTCRtpTransceiver === 'undefined')
			throw error;

		return new Device({ handlerName: 'Chrome111' });
	}
}

class Session
{
	constructor()
	{
		this.viewerId = null;
		this.transport = null;
		this.consumers = new Map();
		this.stream = new MediaStream();
		this.closed = false;
		// Consume calls are chained: a state event can arrive while one is running.
		this.queue = Promise.resolve();
		this.events = new EventSource(`/api/rooms/${encodeURIComponent(roomId)}/events${query}`);
		this.events.onmessage = (message) =>
		{
			const event = JSON.parse(message.data);

			this.queue = this.queue.then(() => this.onEvent(event)).catch((error) => this.fail(error));
		};
		this.events.onerror = () => this.fail(new Error('event stream dropped'));
	}

	async onEvent(event)
	{
		switch (event.type)
		{
			case 'hello':
				this.viewerId = event.viewerId;
				if (!device)
				{
					device = createDevice();
					await device.load({ routerRtpCapabilities: event.routerRtpCapabilities });
				}
				await this.createTransport();
				break;
			case 'consumerclosed':
				this.removeConsumer(event.consumerId);
				break;
		}

		if (event.type === 'hello' || event.type === 'state')
		{
			viewersEl.textContent = `${event.viewers} watching`;
			if (event.live)
				await this.consume();
			else
				setStatus('waiting', 'Waiting for the stream to start…');
		}
	}

	async createTransport()
	{
		const params = await api('transport', {});

		this.transport = device.createRecvTransport(params);
		this.transport.on('connect', ({ dtlsParameters }, callback, errback) =>
		{
			api('connect', { dtlsParameters }).then(callback, errback);
		});
		this.transport.on('connectionstatechange', (state) =>
		{
			if (state === 'failed' || state === 'disconnected')
				this.fail(new Error(`transport ${state}`));
		});
	}

	async consume()
	{
		const created = await api('consume', { rtpCapabilities: device.rtpCapabilities });

		for (const params of created)
		{
			const consumer = await this.transport.consume(params);

			for (const old of this.stream.getTracks().filter((t) => t.kind === consumer.kind))
				this.stream.removeTrack(old);
			this.stream.addTrack(consumer.track);
			this.consumers.set(consumer.id, consumer);
		}

		if (created.length > 0)
		{
			await api('resume', { consumerIds: created.map((c) => c.id) });
			video.srcObject = this.stream;
			video.play().catch(() => { /* autoplay is muted, so this only fails if the page is hidden */ });
		}

		if (this.consumers.size > 0)
			setStatus('live', '');
	}

	removeConsumer(consumerId)
	{
		const consumer = this.consumers.get(consumerId);

		if (!consumer)
			return;
		consumer.close();
		this.stream.removeTrack(consumer.track);
		this.consumers.delete(consumerId);
	}

	fail(error)
	{
		if (this.closed)
			return;
		console.warn(`privastream: ${error.message}; reconnecting`, error.stack);
		this.close();
		setStatus('reconnecting', 'Reconnecting…');
		setTimeout(start, RECONNECT_MS);
	}

	close()
	{
		this.closed = true;
		this.events.close();
		for (const consumer of this.consumers.values())
			consumer.close();
		if (this.transport)
			this.transport.close();
	}
}

function start()
{
	session = new Session();
}

unmuteButton.addEventListener('click', () =>
{
	video.muted = !video.muted;
	unmuteButton.textContent = video.muted ? '🔇 Unmute' : '🔊 Mute';
});

// For tests and diagnostics: what this page decodes right now.
window.privastream =
{
	status : () => document.body.dataset.status,
	async stats()
	{
		const result = { status: document.body.dataset.status, viewerId: session && session.viewerId, video: null, audio: null };

		for (const consumer of (session ? session.consumers.values() : []))
		{
			const report = await consumer.getStats();

			report.forEach((stat) =>
			{
				if (stat.type !== 'inbound-rtp')
					return;
				const codec = report.get(stat.codecId);

				result[consumer.kind] =
				{
					codec                : codec ? codec.mimeType : null,
					packetsReceived      : stat.packetsReceived,
					packetsLost          : stat.packetsLost,
					framesDecoded        : stat.framesDecoded,
					frameWidth           : stat.frameWidth,
					frameHeight          : stat.frameHeight,
					totalSamplesReceived : stat.totalSamplesReceived,
					concealedSamples     : stat.concealedSamples,
					audioLevel           : stat.audioLevel
				};
			});
		}

		return result;
	}
};

setStatus('connecting', 'Connecting…');
start();
