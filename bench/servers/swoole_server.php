<?php
/*
 * Swoole (PHP) echo/fanout server for bench/run.py's "swoole" contender: the same options and
 * behaviour as pyswoole_server.py, written against Swoole's own API (the model pyswoole
 * follows), so that both run side by side where the extension is installed.
 *
 *   php bench/servers/swoole_server.php --port N [--fanout] [--compression]
 *       [--tls-cert FILE --tls-key FILE]
 *
 * One worker in SWOOLE_BASE (the bench pins the server to one core). --fanout broadcasts each
 * message to every established WebSocket (Swoole has no broadcast call: the connection
 * iterator and push, as its documentation does it). --compression turns on
 * permessage-deflate (websocket_compression) and compresses what it pushes.
 */

declare(strict_types=1);

const MAX_MESSAGE = 16 * 1024 * 1024;  // bytes, as bench/servers/common.py

$options = getopt('', ['port:', 'fanout', 'compression', 'tls-cert:', 'tls-key:', 'host:']);
if (!isset($options['port'])) {
    fwrite(STDERR, "usage: swoole_server.php --port N [--fanout] [--compression] [--tls-cert F --tls-key F]\n");
    exit(2);
}
$host = $options['host'] ?? '127.0.0.1';
$port = (int) $options['port'];
$fanout = isset($options['fanout']);
$compression = isset($options['compression']);
$tls = isset($options['tls-cert'], $options['tls-key']);

$sockType = SWOOLE_SOCK_TCP | ($tls ? SWOOLE_SSL : 0);
$server = new Swoole\WebSocket\Server($host, $port, SWOOLE_BASE, $sockType);
$settings = [
    'worker_num' => 1,
    'package_max_length' => MAX_MESSAGE,
    'websocket_compression' => $compression,
    'log_level' => SWOOLE_LOG_WARNING,
];
if ($tls) {
    $settings['ssl_cert_file'] = $options['tls-cert'];
    $settings['ssl_key_file'] = $options['tls-key'];
}
$server->set($settings);

$flags = SWOOLE_WEBSOCKET_FLAG_FIN | ($compression ? SWOOLE_WEBSOCKET_FLAG_COMPRESS : 0);

$server->on('message', function (Swoole\WebSocket\Server $server, Swoole\WebSocket\Frame $frame) use ($fanout, $flags): void {
    if (!$fanout) {
        $server->push($frame->fd, $frame->data, $frame->opcode, $flags);
        return;
    }
    foreach ($server->connections as $fd) {
        if ($server->isEstablished($fd)) {
            $server->push($fd, $frame->data, $frame->opcode, $flags);
        }
    }
});

$server->start();
