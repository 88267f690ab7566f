// Socket.IO room-broadcast server for the Chorus load harness (`chorus-loadtest compare`).
//
//   node socketio-server.js [PORT]     (or PORT=... ; 0 picks a free port)
//
// Listens on 127.0.0.1 only, WebSocket transport only, and prints `listening <port>` once
// ready. A client emits `join` with a room name (acknowledged with "ok"); a publisher emits
// `publish` with {room, payload}, and every socket in the room gets `msg` with the payload.
"use strict";

const http = require("http");
const { Server } = require("socket.io");

const port = Number(process.argv[2] ?? process.env.PORT ?? 0);
const httpServer = http.createServer();
const io = new Server(httpServer, {
  transports: ["websocket"],
  serveClient: false,
  perMessageDeflate: false,
  maxHttpBufferSize: 1e6,
});

io.on("connection", (socket) => {
  socket.on("join", (room, ack) => {
    if (typeof room === "string") {
      socket.join(room);
    }
    if (typeof ack === "function") {
      ack("ok");
    }
  });
  socket.on("publish", (msg, ack) => {
    if (msg && typeof msg.room === "string") {
      io.to(msg.room).emit("msg", msg.payload);
    }
    if (typeof ack === "function") {
      ack("ok");
    }
  });
});

httpServer.listen(port, "127.0.0.1", () => {
  console.log(`listening ${httpServer.address().port}`);
});

const stop = () => {
  io.close();
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
