from pyswoole import WebSocketServer

server = WebSocketServer("127.0.0.1", 9501)

@server.on("open")
def on_open(server, request):
    print(f"server: handshake success with fd{request.fd}")

@server.on("message")
def on_message(server, frame):
    print(f"receive from {frame.fd}:{frame.data},opcode:{frame.opcode},fin:{frame.finish}")
    server.push(frame.fd, "This message is from swoole websocket server.")

@server.on("close")
def on_close(server, fd):
    print(f"client {fd} closed")

server.start()
