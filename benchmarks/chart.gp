# gnuplot -e "dir='build/bench'" benchmarks/chart.gp  ->  dir/bench.png
set terminal pngcairo size 1200,480 noenhanced
set output dir.'/bench.png'
set multiplot layout 1,2
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
unset multiplot
