# gnuplot -e "dir='build/bench'" benchmarks/chart.gp  ->  dir/bench.png
set terminal pngcairo size 1800,480 noenhanced
set output dir.'/bench.png'
set multiplot layout 1,3
set logscale xy
set grid
set key top left
set title 'W1 stream: payload MB/s by frame size'
set xlabel 'payload bytes'
set ylabel 'MB/s'
plot for [i=2:4] dir.'/stream.dat' using 1:i with linespoints lw 2 title word('p2p raw node', i-1)
set title 'W2 fan-out: p50 round latency by peers'
set xlabel 'peers (P)'
set ylabel 'p50 latency (us)'
plot for [i=2:4] dir.'/fanout.dat' using 1:i with linespoints lw 2 title word('p2p raw node', i-1)
# W5: one colour per payload size, p2p solid and raw dashed (columns named in streams.dat's
# first line).
unset logscale x
set xtics 1
set title 'W5 16 streams into one receiver: frames/s by threads'
set offsets graph 0.05, graph 0.05, 0, 0
set xlabel 'receiver threads (T)'
set ylabel 'frames/s'
set key bottom right
plot for [i=2:*] dir.'/streams.dat' using 1:i with linespoints lw 2 lc i/2 dt 1+i%2 title columnhead(i)
unset multiplot
